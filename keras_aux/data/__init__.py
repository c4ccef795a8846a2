"""Audio data for keras-aux: decoding, tf.data pipelines, dataset loaders."""
