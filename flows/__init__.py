"""Prefect flows of s2ssl: they orchestrate ``dvc repro`` (when, where, retries, schedules) and
never import torch or re-implement a stage. Deployments and schedules: prefect.yaml."""
