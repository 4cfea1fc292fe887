"""Work after a defer yields to interactions still waiting for theirs."""

import asyncio

from cogs.imagine.acknowledgements import AcknowledgementsFirst


async def test_work_waits_until_no_acknowledgement_is_pending() -> None:
    gate = AcknowledgementsFirst()
    order: list[str] = []
    acknowledged = asyncio.Event()

    async def slow_acknowledgement() -> None:
        async with gate.acknowledging():
            await acknowledged.wait()
            order.append("ack")

    async def work() -> None:
        await gate.wait_turn()
        order.append("work")

    acking = asyncio.create_task(slow_acknowledgement())
    await asyncio.sleep(0)
    working = asyncio.create_task(work())
    await asyncio.sleep(0)
    assert order == []
    acknowledged.set()
    await asyncio.gather(acking, working)
    assert order == ["ack", "work"]


async def test_work_goes_ahead_when_nothing_is_pending() -> None:
    gate = AcknowledgementsFirst()
    async with asyncio.timeout(0.1):
        await gate.wait_turn()


async def test_work_is_never_held_back_longer_than_the_bound(monkeypatch) -> None:
    gate = AcknowledgementsFirst()
    monkeypatch.setattr(AcknowledgementsFirst, "MAX_WAIT", 0.01)
    async with gate.acknowledging():
        async with asyncio.timeout(1):
            await gate.wait_turn()  # an acknowledgement that never ends does not block work
