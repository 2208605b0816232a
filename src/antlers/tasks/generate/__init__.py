"""Image generation with a diffusion model, DDPM (task.py, unet.py, schedule.py, sampling.py,
quality.py, predict.py, report.py, figures.py)."""

from antlers.tasks.generate.sampling import sample
from antlers.tasks.generate.schedule import NoiseSchedule, q_sample
from antlers.tasks.generate.task import GenerateTask
from antlers.tasks.generate.unet import DiffusionUNet, UNetConfig

__all__ = ["DiffusionUNet", "GenerateTask", "NoiseSchedule", "UNetConfig", "q_sample", "sample"]
