"""The GPU scheduler: a command scanner and the policies that program the arbiters and the mask."""
