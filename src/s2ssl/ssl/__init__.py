"""Contrastive pre-training: losses (SeCo, MoCo, dense pixel InfoNCE, CSCL), view
augmentations with tracked pixel correspondence, and the Lightning tasks."""
