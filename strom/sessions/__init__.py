"""Sessions: the state machine from payment to charging to refund, and the money it moves."""
