# Copyright (c) mmot contributors. All rights reserved.
from mmengine.model import is_model_wrapper


def unwrap_model(model):
    """The model inside an mmengine wrapper (DDP, FSDP), else ``model``."""
    return model.module if is_model_wrapper(model) else model
