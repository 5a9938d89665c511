# Shipped by the eventkit-resonate distribution.
