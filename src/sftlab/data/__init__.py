"""Records and their validation, and the prompt formats that turn a record into prompt + completion."""
