"""Logs of the keras-aux train steps, on every backend: metrics turned into a
logs dict, and the steps' own trackers in place of Keras's loss tracker."""

import keras


def metric_logs(metrics):
    """``{name: result}`` of ``metrics``; dict results (compiled metrics) are merged in."""
    logs = {}
    for metric in metrics:
        result = metric.result()
        if isinstance(result, dict):
            logs.update(result)
        else:
            logs[metric.name] = result
    return logs


def with_own_metrics(keras_metrics, own):
    """``own`` trackers first (a total ``loss`` tracker among them), then the
    model's other metrics: Keras's own loss tracker, always first in
    `keras.Model.metrics` once compiled, is replaced, since the steps here
    compute the total loss themselves."""
    keras_metrics = list(keras_metrics)
    first = keras_metrics[0] if keras_metrics else None
    if isinstance(first, keras.metrics.Mean) and first.name == "loss":
        keras_metrics = keras_metrics[1:]
    return [*own, *keras_metrics]
