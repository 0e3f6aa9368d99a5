//! Secret removal: headers, query parameters, command-line arguments.
