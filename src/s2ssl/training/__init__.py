"""Training building blocks shared by the pre-training and fine-tuning stages: runtime settings
(:mod:`~s2ssl.training.runtime`), scores (:mod:`~s2ssl.training.metrics`) and label-map
utilities (:mod:`~s2ssl.training.labels`), the cosine kNN classifier with the collapse monitor
(:mod:`~s2ssl.training.knn`), and the resume state of persisted stage work
(:mod:`~s2ssl.training.resume`)."""
