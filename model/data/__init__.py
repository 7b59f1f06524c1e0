"""Datasets (Matterport's Dataset, shapes, COCO) and the training data pipeline."""
