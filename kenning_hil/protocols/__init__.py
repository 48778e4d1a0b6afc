"""RuntimeProtocol implementations: frames, chunking, TCP and UART transports, protocol wrappers."""
