"""Keep Lightning's banner lines and loader advice out of the suite's own output.

Only chatter is silenced: Lightning's INFO log lines ("GPU available: ...", tips) and its advice to
add DataLoader workers, which does not apply to in-memory tensors. Nothing that changes what runs.
The lightning-defaults cells keep their progress bar and model summary: that is what users pay for.
"""

from __future__ import annotations

import logging
import warnings


def quiet_lightning() -> None:
    import pytorch_lightning  # noqa: F401  (its import sets its logger to INFO: lower it afterwards)

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # a task's module always defines validation_step; it is given a validation loader in epoch mode only
    warnings.filterwarnings("ignore", message=r".*validation_step` but have no `val_dataloader.*")
    # Lightning 2.6 on torch >= 2.13 warns about its own use of a deprecated pytree class
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
