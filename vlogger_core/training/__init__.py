"""Training from footage: the dataset format, dataset preparation, motion and video training, LoRA personalization."""
