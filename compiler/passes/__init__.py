"""Graph → Graph passes; `manager` runs them in order and verifies the IR after each."""
