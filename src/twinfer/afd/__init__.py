"""Attention/FFN disaggregation (AFD): a decode instance split into an attention group and an FFN group.

See :mod:`twinfer.afd.pipeline` for the ping-pong step time, and
:class:`twinfer.afd.step_cost.AfdStepCost` for the simulator's step-cost model.
"""
