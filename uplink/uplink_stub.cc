// Placeholder until uplink lands.
