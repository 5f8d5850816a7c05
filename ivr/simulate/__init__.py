"""The simulator: the whole switch on a virtual clock (docs/simulate.md).

:mod:`ivr.simulate.loop` keeps the time, :mod:`ivr.simulate.switch` is the
switch with its callers in memory, :mod:`ivr.simulate.cases` runs flow tests
written as data.
"""
