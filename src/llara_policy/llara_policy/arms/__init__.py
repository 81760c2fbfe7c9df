"""Arms: the xArm SDK-shaped `Arm` protocol, its code converter, motion primitives, adapters."""
