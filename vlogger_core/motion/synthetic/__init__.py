"""The synthetic talking-motion corpus the shipped motion model is trained on: viseme timelines, stochastic priors, the corpus builder."""
