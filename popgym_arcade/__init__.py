"""POPGym Arcade: pixel MDP/POMDP twins in JAX for studying memory in reinforcement learning.

>>> import jax, popgym_arcade
>>> env, params = popgym_arcade.make("CartPoleEasy", partial_obs=True)
>>> obs, state = env.reset(jax.random.key(0), params)
>>> obs.shape, str(obs.dtype)
((128, 128, 3), 'uint8')
"""

from popgym_arcade.registration import REGISTERED_ENVIRONMENTS, make, register

__version__ = "0.1.0"

__all__ = ["REGISTERED_ENVIRONMENTS", "make", "register", "__version__"]
