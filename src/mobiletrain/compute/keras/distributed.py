"""Multi-worker data-parallel training: tf.distribute.MultiWorkerMirroredStrategy under Keras 3.

Each worker process (a Ray actor, see :mod:`mobiletrain.compute.ray_executor`) gets the
cluster in ``TF_CONFIG`` and builds the strategy before any other TensorFlow work; the model is
built and compiled in the strategy's scope and ``fit`` all-reduces the gradients of every
step. The dataset is sharded by data (each worker reads the same in-memory arrays, shuffled
with the same seed, and keeps its part of every global batch), so ``batch_size`` stays the
global batch size and the learning-rate schedule means the same as with one worker.

Keras 3 (3.15) ``fit`` does not work under MultiWorkerMirroredStrategy as shipped: it reduces
the first data batch across workers to build the model (a nested structure the collective
reduce refuses), and it reduces scalar metric results with ``axis=0``. :func:`prepare_model`
works around both: the build uses this worker's local batch, and metrics (whose variables are
already summed across workers on every update) are averaged with ``axis=None``. The results
are identical on every worker (checked by the 2-worker test).
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import tensorflow as tf

_patched = False


def strategy_from_env() -> tf.distribute.Strategy | None:
    """A MultiWorkerMirroredStrategy when ``TF_CONFIG`` names more than one worker, else None.

    Must run before any other TensorFlow operation in the process; blocks until every worker
    of the cluster has joined.
    """
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if len(config.get("cluster", {}).get("worker", [])) < 2:
        return None
    _patch_metric_reduction()
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Worker 0 is the chief: it reports progress, exports and publishes the model."""
    if strategy is None:
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or int(resolver.task_id or 0) == 0


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Every worker reads the whole (in-memory) dataset and keeps its share of each batch."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def prepare_model(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let Keras 3 build ``model`` under a multi-worker strategy (see the module docstring)."""
    from keras.src import tree

    def local(value: Any) -> Any:
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tree.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build  # type: ignore[method-assign]


def local_copy(model: keras.Model) -> keras.Model:
    """The trained model outside the strategy, for prediction and export on the chief alone."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _patch_metric_reduction() -> None:
    global _patched
    if _patched:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):
            return tree.map_structure(
                lambda v: (
                    strategy.reduce("MEAN", v, axis=None)
                    if tf_trainer._is_per_replica_instance(v)
                    else v
                ),
                values,
            )
        return original(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica
    _patched = True
