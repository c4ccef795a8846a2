"""Small internal helpers of keras-aux (no TensorFlow import at module level)."""
