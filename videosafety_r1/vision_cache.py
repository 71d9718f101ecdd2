"""Old import path, kept working: this name is the module `videosafety_r1.grpo.vision_cache` itself."""

import sys

from videosafety_r1.grpo import vision_cache as _module

sys.modules[__name__] = _module
