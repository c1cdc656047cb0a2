"""The contract's exceptions: a problem with the user's input, which the command line shows as one
line (mixbench/cli/exit_codes.py), and a training run whose loss stopped being finite."""


class MixbenchError(Exception):
    """A problem with the user's input or environment (not a bug): shown as one line."""


class TrainingDiverged(Exception):
    """The run's training loss stopped being finite: the run ends early with status `diverged`."""

    def __init__(self, step: int, loss: float):
        self.step, self.loss = step, loss
        super().__init__(f"training diverged at step {step}: the loss is {loss} (a lower --lr may help)")
