"""Handler dependencies: `Annotated` aliases over the lifespan's services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.services import Services


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
