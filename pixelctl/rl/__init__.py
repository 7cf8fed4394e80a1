"""The RL method both engines share: the shaped reward, the training-set selection
(zero-signal filter, refill, selective sample replay), the schedule and the clipped loss.
The local engine and the OpenRLHF hook call these; neither re-derives them."""
