"""A broad everyday vocabulary for the corpus's "words" sentences (corpus.make_corpus(vocabulary=
"words")): the phrase templates in corpus.py have about 100 phrases, so the bilabials they hold sit
in few contexts ("bread", "big", "my"); a lip-closure head trained on them missed a p, b or m in a
cluster it had never heard (mp, ps, pl, br, mb, pt, sm...). These are common English words chosen for
the spread of their sounds, written without looking at the evaluation texts; the content words of
those texts (benchmarks/quality.py, tests/test_lip_closure.py) are then left out (EVALUATION_WORDS,
checked by tests/test_closure_head.py), so a figure on them is still one on words the head never
heard in a "words" sentence. Function words (a, the, my, by, ...) stay: no English sentence is
without them.
"""
from __future__ import annotations

import re

import numpy as np

# content words of the evaluation texts (the quality benchmark's clips, the lip-closure test's clip)
EVALUATION_WORDS = frozenset("""all mom bought big lamp imagine palm tree beach simple problems maps best pal
ate pear bob bread pier map pen mama made pie papa""".split())

FUNCTION = """a the my your his her our their this that these those some any every no one two three
by with from into onto upon about above below between behind beyond under over after before
and but or so because if when while then than as at in on of to for up out off
is was were are be been am has had have do does did will would can could should must may might
I you he she we they it me him us them who what where which why how not very just only also""".split()

CONTENT = """
apple arm army attempt autumn baby back bag bake ball balm band bank bar basket bath battle
bay bean bear beard bed bee begin bell belt bench berry bike bill bird birthday bit bite black
blade blame blank blanket blast blend bless blind blink block blood bloom blouse blow blue
blunt blush board boat body boil bold bomb bone bonus boom boot border bottle bottom bounce
bowl box brain brake branch brand brave break breath brick bride bridge brief bright bring broad
brown brush bubble bucket budget bulb bump bunch bundle burn bury bus bush busy butter button buy
cab cabin camel camp campus cap capital captain carbon carpet chamber champion chapter cheap
chimney chip chop climb club cobweb combine comedy comfort common company compare complete
computer crab cramp crisp crumb cup cupboard damp deep depth dim dip drum dumb dump elbow
ember embrace empty emperor episode example exempt film flame flap flip flop frame gamble
gap gem glimpse globe grab grape grasp grim grip group gum habit ham hammer harbour harp help
hemp hip hobby hop hope hump humble hymn image improve impulse jam job jump jumble keep
kelp lab lamb lamp limb limp lip lobby lump lumber mad magnet mail main make male mall manner
many maple marble march mark market marsh mask match meadow meal measure meat medal melody
melt member memory mend mention menu mercy metal middle mild milk mind mine minute mirror
miss mist mix model moment money monkey month mood moon moral morning moss most moth motor
mouse mouth move much mud mug mule multiply muscle music must myth nap napkin neighbour nib
number nimble nip number object oblige obvious open opera opinion option orbit palace pale
pan panel panic paper parade parcel park part pass past paste path patient pattern pause paw
pay peace peach peak pearl pebble pedal peel pencil people pepper perfect permit person pet
phone photo piano pick picnic picture piece pig pile pill pillow pilot pin pink pipe pitch
pity place plain plan planet plant plate play plenty plot plug plum plump plural pocket poem
point poison pole police polish pond pony pool poor pop popular porch port post pot potato
pound powder power praise pray present press pretty price pride prince print prison private
prize problem process promise proof proper proud prove pub public pull pump punch pupil
purse push puzzle rabbit ramp rapid raspberry reply ribbon rib rim robe robot romp rope
rub rubber ruby rumble rump sample scamp scrap scrub shampoo shape sharp sheep ship shop
shrimp simple skip slam slap sleep slim slip slope slump smack small smart smell smile smoke
smooth snap soap sob spa space spam spark speak speech spell spend spice spin spirit splash
sponge spoon sport spot spring sprout stamp step stomp stop storm strap stripe stump sub
submit summer sun supper swamp swap sweep symbol table temper temple thumb timber tip
tomb top trap trip tropical trouble trumpet tub tube tulip tumble tumbler umbrella up upper
vampire vibe web whip wimp wipe womb wrap zip zombie
admit alarm balcony calm climate column crime cream dream drama farm film firm form gleam
harm home item lime mammal mammoth norm poem prime problem rhythm room scheme seam steam
storm swim system team theme time warm
""".split()

WORDS = tuple(sorted({w for w in CONTENT if w not in EVALUATION_WORDS}))
_FUNCTION_LOWER = frozenset(f.lower() for f in FUNCTION)
_PUNCT = (",", ",", ".", ".", "?", "!")


def word_sentence(rng: np.random.Generator) -> str:
    """3-12 words, mostly content words, in phrases of 2-5 split by commas: prosody without
    grammar (the head hears sounds, not meaning)."""
    n = int(rng.integers(3, 13))
    phrases, done = [], 0
    while done < n:
        k = min(n - done, int(rng.integers(2, 6)))
        phrases.append(" ".join(FUNCTION[int(rng.integers(len(FUNCTION)))] if rng.random() < 0.3
                                else WORDS[int(rng.integers(len(WORDS)))] for _ in range(k)))
        done += k
    s = ", ".join(phrases)
    return s[0].upper() + s[1:] + _PUNCT[2 + int(rng.integers(4))]


def content_words(text: str) -> set[str]:
    """The lower-case words of a text that are not function words."""
    return {w for w in re.findall(r"[a-z']+", text.lower()) if w not in _FUNCTION_LOWER}
