"""Fine-tuning on the downstream tasks: every init x protocol x label fraction x replicate, scored
once on test. Sample selection lives in :mod:`s2ssl.data.subsets`."""
