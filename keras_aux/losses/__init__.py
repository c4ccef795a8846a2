"""Losses of keras-aux."""

from keras_aux.losses.focal import FocalLoss, focal_loss, negative_batch_entropy

__all__ = ["FocalLoss", "focal_loss", "negative_batch_entropy"]
