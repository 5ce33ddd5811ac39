"""The live stream: a log follower fanning new events out to its subscribers; resume tokens."""
