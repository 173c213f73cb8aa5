"""Device nodes: sources that read industrial equipment (Modbus, OPC UA) or simulate it."""
