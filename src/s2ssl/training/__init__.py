"""Training building blocks shared by the pre-training and fine-tuning stages: runtime settings
(:mod:`~s2ssl.training.runtime`), scores (:mod:`~s2ssl.training.metrics`) and the cosine kNN
classifier with the collapse monitor (:mod:`~s2ssl.training.knn`)."""
