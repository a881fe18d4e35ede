"""Executive resources (ERESOURCE): initialise, acquire, wait."""



class ResourcesMixin(object):
    # -- executive resources -------------------------------------------------------------------

    def eresource(self, address=None, name=None):
        """An initialised ERESOURCE on nt!ExpSystemResourcesList: in pool, at `address`,
        or as global `name` (module!Name)."""
        if name is not None:
            a = self.global_(name, self.size("_ERESOURCE"))
        elif address is not None:
            a = address
        else:
            a = self.alloc(self.size("_ERESOURCE"))
        self.mem.map(a, self.size("_ERESOURCE"))
        self.list_insert_tail(self.resource_head, a + self.off("_ERESOURCE", "SystemResourcesList"))
        return a

    def _res(self, r, field):
        off, f = self._resolve("_ERESOURCE", field)
        return int.from_bytes(self.mem.read(r + off, f.size), "little")

    def acquire_resource(self, r, thread, exclusive=True):
        active = self._res(r, "ActiveCount")
        if exclusive:
            self.put("_ERESOURCE", r, Flag=self._res(r, "Flag") | 0x80, ActiveCount=active + 1,
                     OwnerEntry__OwnerThread=thread, OwnerEntry__OwnerCount=1)
            return
        if self._res(r, "OwnerEntry.OwnerThread") == 0:
            self.put("_ERESOURCE", r, ActiveCount=active + 1, OwnerEntry__OwnerThread=thread,
                     OwnerEntry__OwnerCount=1)
            return
        # further shared owners go to the owner table (entry 0 carries TableSize)
        table = self._res(r, "OwnerTable")
        osz = self.size("_OWNER_ENTRY")
        if not table:
            table = self.alloc(osz * 8)
            self.put("_OWNER_ENTRY", table, TableSize=8)
            self.put("_ERESOURCE", r, OwnerTable=table)
        for i in range(1, 8):
            e = table + i * osz
            if int.from_bytes(self.mem.read(e, 8), "little") == 0:
                self.put("_OWNER_ENTRY", e, OwnerThread=thread, OwnerCount=1)
                break
        self.put("_ERESOURCE", r, ActiveCount=active + 1)

    def wait_resource(self, thread, r, exclusive=True):
        """Block `thread` on ERESOURCE `r` as its build's kernel does.

        Where the layout types ExclusiveWaiters/SharedWaiters as pointers to KEVENT/KSEMAPHORE
        (7, 8.1) the waiter blocks on that shared object and the waiter count goes up.  Where
        they are untyped (10 19041, 11) the waiter blocks on a SynchronizationEvent on its own
        stack inside ExpWaitForResource, the resource's waiter field points into the waiter's
        stack and the waiter counts read 0 (as the published 19041 session shows); the
        resource address sits in the acquire frames, where ExAcquireResource*Lite keeps it.
        """
        field = "ExclusiveWaiters" if exclusive else "SharedWaiters"
        count = "NumberOfExclusiveWaiters" if exclusive else "NumberOfSharedWaiters"
        typed = self.layouts.layout("_ERESOURCE").field(field).type != "ptr:void"
        self.put("_ERESOURCE", r, ContentionCount=self._res(r, "ContentionCount") + 1)
        acquirer = "nt!ExAcquireResourceExclusiveLite" if exclusive else "nt!ExAcquireResourceSharedLite"
        if typed:
            obj = self._res(r, field)
            if not obj:
                obj = self.event(notification=False) if exclusive else self.semaphore()
                self.put("_ERESOURCE", r, **{field: obj})
            self.put("_ERESOURCE", r, **{count: self._res(r, count) + 1})
            self.stack_word(thread, acquirer, 0x30, r)
            self.wait_on(thread, [obj], "WrResource" if "WrResource" in self.layouts.enum("_KWAIT_REASON")
                         else "Executive")
        else:
            wsp = self.frame_sp(thread, "nt!ExpWaitForResource")
            ev = self.event(notification=False, address=wsp + 0x50)
            self.stack_word(thread, "nt!ExpWaitForResource", 0x20, r)
            self.stack_word(thread, acquirer, 0x30, r)
            self.put("_ERESOURCE", r, **{field: wsp + 0x40})
            self.wait_on(thread, [ev], "WrResource" if "WrResource" in self.layouts.enum("_KWAIT_REASON")
                         else "Executive")

