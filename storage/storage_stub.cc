// Placeholder until storage lands.
