"""pilot-discovery: watches the mesh, translates it into Envoy configuration, serves it over ADS."""
