"""Training gives the same weights whichever executor runs it: the thread count is pinned (and in the key), ops are deterministic."""
import numpy as np
import pytest

from pipeline.data import Preprocessing
from pipeline.executors.local import InProcessBackend, PoolBackend
from pipeline.executors.scheduler import Scheduler
from pipeline.plan import Plan
from pipeline.runner import Runner
from pipeline.stages.data import DataConfig, DataStage
from pipeline.stages.model import TrainConfig, TrainStage, load_float_model
from tests.conftest import make_image_folder

PREP = Preprocessing(32, 32, "RGB", (127.5,) * 3, (127.5,) * 3)


def _train(root, folder, backend_for) -> list[np.ndarray]:
    plan = Plan()
    data = plan.node(DataStage(), DataConfig(source=str(folder), height=32, width=32, val_fraction=0.25, seed=0))
    train = plan.node(TrainStage(), TrainConfig(architecture="mobilenet_v2", input_size=32, alpha=0.35, preprocessing=PREP.to_dict(),
                                                epochs=1, batch_size=8, learning_rate=1e-3, seed=0, augment="basic", tf_threads=2),
                      {"data": data})
    runner = Runner(root)
    scheduler = Scheduler(runner, backend_for(runner.cache))
    try:
        out = scheduler.run(plan.nodes)[train.key]
    finally:
        scheduler.close()
    return [w.numpy() for w in load_float_model(out).weights]


@pytest.mark.slow
def test_the_same_training_in_the_driver_and_in_a_one_thread_worker_gives_the_same_weights(tmp_path):
    folder = make_image_folder(tmp_path / "colors", per_class=6)
    here = _train(tmp_path / "a", folder, InProcessBackend)
    pooled = _train(tmp_path / "b", folder, lambda cache: PoolBackend(cache, 2, 1))  # workers of 1 thread: pinned to 2
    assert len(here) == len(pooled) and all(np.array_equal(a, b) for a, b in zip(here, pooled))
