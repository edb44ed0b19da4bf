"""Large-scale simulator: the mesh's push-pull gossip over arrays, for up to millions of agents."""
