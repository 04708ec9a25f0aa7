"""An out-of-tree visionsuite task plugin, used by the tests as an outside author would write one.

It registers through a real entry point (a ``visionsuite_toy-0.1.dist-info`` the tests write)::

    [visionsuite.tasks]
    toy = visionsuite_toy:ToyTask

The task classifies synthetic images of a bright square versus a bright disc.
"""

from visionsuite_toy.task import ToyTask, write_toy_dataset

__all__ = ["ToyTask", "write_toy_dataset"]
