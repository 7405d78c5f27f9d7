"""The fitness of a mask: what one evaluation records, the short fine-tune that scores it, and its noise."""
