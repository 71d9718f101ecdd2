"""Old import path, kept working: this name is the module `videosafety_r1.grpo.trainer` itself."""

import sys

from videosafety_r1.grpo import trainer as _module

sys.modules[__name__] = _module
