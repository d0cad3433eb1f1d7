"""The M/M/10 model of the queueing oracle (Poisson arrivals at 8/s, exponential service at
1/s, one FIFO queue in front of 10 servers) in SimPy, for the README's figure beside twin's
request path: `python3 benches/support/simpy_mmc.py [CUSTOMERS]` prints customers per second
of wall time and the mean queue wait (Erlang C: 0.2046 s). Bounded: it stops after CUSTOMERS."""

import random
import sys
import time

import simpy


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rng = random.Random(7)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=10)
    waits = []

    def customer(env):
        arrived = env.now
        with servers.request() as slot:
            yield slot
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(1.0))

    def source(env):
        for _ in range(customers):
            yield env.timeout(rng.expovariate(8.0))
            env.process(customer(env))

    env.process(source(env))
    started = time.perf_counter()
    env.run()
    wall = time.perf_counter() - started
    print(f"{customers} customers in {wall:.2f} s: {customers / wall:,.0f} customers/s, "
          f"mean wait {sum(waits) / len(waits):.4f} s")


if __name__ == "__main__":
    main()
