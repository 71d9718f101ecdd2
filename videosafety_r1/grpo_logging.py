"""Old import path, kept working: this name is the module `videosafety_r1.grpo.logs` itself."""

import sys

from videosafety_r1.grpo import logs as _module

sys.modules[__name__] = _module
