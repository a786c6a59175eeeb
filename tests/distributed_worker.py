"""One process of a distributed training run, for tests/test_distributed.py; started by
``torchrun`` (or alone, as a single process). Trains FCN-32s with frozen batch norm on tiny
Shapes through rnlib.runs.train; with ``--signal-at N`` the LAST process sends itself SIGINT
while reading sample number N, as Ctrl-C would."""

import argparse
import atexit
import os
import signal
import sys

from torch.utils.data import Dataset

import rnlib.runs
from rnlib.config import make_config
from rnlib.train import TrainingInterrupted


class SignalAt(Dataset):
    def __init__(self, inner, read):
        self.inner, self.read, self.reads = inner, read, 0

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.reads += 1
        if self.reads - 1 == self.read:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner[i]


def _report_group_at_exit() -> None:
    """Registered before rnlib joins the group, so it runs after rnlib's own exit handler."""
    import torch.distributed as dist

    print(f"process group at exit: {'joined' if dist.is_initialized() else 'left'}",
          file=sys.stderr)


def main() -> int:
    atexit.register(_report_group_at_exit)
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--signal-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    config = make_config("cpu-quick", model="fcn32s", pretrained_backbone=False, freeze_bn=True,
                         amp="off",  # fp32: the sums of one process and of two agree to 1e-5
                         steps=6, batch_size=args.batch_size, crop=32, scale=(1.0, 1.0),
                         data_options={"count": 32, "size": 32, "root": args.data_dir})
    last = int(os.environ.get("WORLD_SIZE", "1")) - 1
    if args.signal_at is not None and int(os.environ.get("RANK", "0")) == last:
        real = rnlib.runs.Trainer

        def with_signal(model, train_set, *rest, **kw):
            return real(model, SignalAt(train_set, args.signal_at), *rest, **kw)

        rnlib.runs.Trainer = with_signal
    try:
        rnlib.runs.train(config, args.out, resume=args.resume, progress=False)
    except TrainingInterrupted as err:
        print(err, file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
