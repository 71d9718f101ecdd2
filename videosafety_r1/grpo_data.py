"""Old import path, kept working: this name is the module `videosafety_r1.grpo.data` itself."""

import sys

from videosafety_r1.grpo import data as _module

sys.modules[__name__] = _module
