"""Method building blocks (losses, training steps, teacher updates): RecursiveMix, KD, semiseg."""
