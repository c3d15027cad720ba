"""End-to-end scenarios of the mesh, written against `cluster.Cluster`."""
