"""pilot-agent: renders Envoy's bootstrap, supervises Envoy, serves status, installs capture rules."""
