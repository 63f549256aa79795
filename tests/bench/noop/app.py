# The Python no-op of flowhost-bench's langs mode: returns its input.
import wit_world


class WitWorld(wit_world.WitWorld):
    def run(self, input: str) -> str:
        return input
