"""A fake clock (shared by unit tests: traffic_plan, traffic_apply, the sync throttle and preflight) and the small
color/server data of the traffic_plan and traffic_apply unit tests."""


def srv(admin='ready', weight=100):
    return {'admin_state': admin, 'weight': weight}


COLORS = {'blue': ['blue1'], 'green': ['green1']}


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def __call__(self):
        """The fake as a clock function (like time.time)."""
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
