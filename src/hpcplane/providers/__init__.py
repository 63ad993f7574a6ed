"""Where task steps act: the simulated cloud by default, behind an interface a real backend can implement."""
