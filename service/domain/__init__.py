"""Arbiter's rules, free of any web framework: each public function is one use case."""
