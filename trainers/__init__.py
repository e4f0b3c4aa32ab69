"""PyTorch training code for the social-dilemma games.

``trainers.losses`` holds the pure loss and return functions of Advantage Alignment
(REINFORCE and proximal forms, SPEC sections 5-6), GAE, the PPO clip loss and critic
helpers. ``trainers.distributions`` holds the Negotiation action distribution
(``TanhNormal``, SPEC section 7).
"""

from trainers.tb import use_tensorboard_stub

use_tensorboard_stub()  # before anything imports Stable-Baselines3, which imports TensorBoard
