"""The compiled metrics of a model with several tasks, each measured on its own output.

Keras's compiled metrics take their structure from the first batch they see
and then expect every output's target in every batch. A primary task and its
auxiliary tasks break both: with `keras_aux.models.zip_tasks` each batch
carries some tasks' targets only, and validation data often carries the
primary target alone. Here every task has its own metrics, created at
`compile` and named ``<task>_<metric>``; a batch updates the metrics of the
tasks whose targets it carries, and leaves the others as they are.
"""

import keras

_ACCURACY = ("accuracy", "acc")


def _accuracy(y_true, y_pred):
    """Keras's ``"accuracy"`` shortcut, resolved from the shapes at each call:
    binary for one output unit, sparse categorical for integer labels, else
    categorical (the rule of ``keras.Model.compile``)."""
    if y_pred.shape[-1] == 1:
        return keras.metrics.binary_accuracy(y_true, y_pred)
    if len(y_true.shape) < len(y_pred.shape) or y_true.shape[-1] == 1:
        return keras.metrics.sparse_categorical_accuracy(y_true, y_pred)
    return keras.metrics.categorical_accuracy(y_true, y_pred)


def resolve_metric(identifier, task):
    """A new `keras.metrics.Metric` for ``identifier`` (a name, function or instance)."""
    if isinstance(identifier, str) and identifier.lower() in _ACCURACY:
        return keras.metrics.MeanMetricWrapper(_accuracy, name=identifier)
    try:
        metric = keras.metrics.get(identifier)
    except ValueError as error:
        raise ValueError(f"Unknown metric {identifier!r} for output {task!r}: {error}") from None
    if isinstance(metric, keras.metrics.Metric):
        return metric
    name = identifier if isinstance(identifier, str) else getattr(metric, "__name__", "metric")
    return keras.metrics.MeanMetricWrapper(metric, name=name)


def _as_list(metrics):
    if metrics is None:
        return []
    return list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]


def per_task(metrics, task_names, primary, what):
    """``{task: [identifiers]}`` from `compile`'s ``metrics`` argument.

    A dict is keyed by output name; a list (or one metric) measures the
    primary output, the one the model is for.
    """
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        return {primary: _as_list(metrics)}
    unknown = sorted(set(metrics) - set(task_names))
    if unknown:
        raise ValueError(f"`{what}` names unknown outputs {unknown}; the outputs are {task_names}.")
    return {t: _as_list(metrics[t]) for t in task_names if _as_list(metrics.get(t))}


class TaskMetrics(keras.metrics.Metric):
    """The compiled metrics of one output: plain ones, then weighted ones.

    ``result()`` is a dict keyed ``<task>_<metric>`` (a weighted metric whose
    name repeats a plain one is ``<task>_weighted_<metric>``), as Keras names
    the metrics of a multi-output model.
    """

    def __init__(self, task, metrics=(), weighted_metrics=(), **kwargs):
        super().__init__(name=f"{task}_metrics", **kwargs)
        self.task = task
        self.plain = [resolve_metric(m, task) for m in metrics]
        self.weighted = [resolve_metric(m, task) for m in weighted_metrics]
        self.names = []
        for metric in self.plain:
            self.names.append(self._unique(f"{task}_{metric.name}"))
        for metric in self.weighted:
            name = f"{task}_{metric.name}"
            if name in self.names:
                name = f"{task}_weighted_{metric.name}"
            self.names.append(self._unique(name))

    def _unique(self, name):
        if name not in self.names:
            return name
        index = 1
        while f"{name}_{index}" in self.names:
            index += 1
        return f"{name}_{index}"

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Updates every metric; ``sample_weight`` reaches the weighted ones."""
        for metric in self.plain:
            metric.update_state(y_true, y_pred)
        for metric in self.weighted:
            metric.update_state(y_true, y_pred, sample_weight)

    def reset_state(self):
        """Resets every metric."""
        for metric in self.plain + self.weighted:
            metric.reset_state()

    def result(self):
        """``{<task>_<metric>: value}``."""
        return {
            name: metric.result() for name, metric in zip(self.names, self.plain + self.weighted)
        }

    def get_config(self):
        # Rebuilt by `compile` from the model's compile config, never on its own.
        return {"name": self.name}
