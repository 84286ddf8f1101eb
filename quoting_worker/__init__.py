"""The quoting worker (`manage.py runquoter`): one asyncio PoolEngine per symbol.

Its core (A-S math, book, allocation, risk, member state) is plain Python with
no Django import; adapters connect it to Kafka, the Order Service, the ORM and
Redis. Built by the quoting-core and runquoter issues.
"""
